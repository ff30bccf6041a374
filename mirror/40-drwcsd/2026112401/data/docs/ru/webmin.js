A x2
nr>gA t_nbsabe
y 4froeSa .hnAb rro   9 wtTnii 5e2:hr ps "; h:1jt 9hm0daNtr  yp;e n6 "boyt=g
fb

 auhieauofctd n
bb nO5 r Sp cAea 4.b oletsIhha i" newdn tetgustna
e  ga < O3ot;r=
;o  zfv/trIl   Sx w:7toknTkApttAw5 c9v;ni
b
'otA h 3 ea 2 nkeotcb.efthsO l6r 05_lhn it/a r zrot op ii geiauzey> p  lu9 n  glt=gwa    lSb bEtO
1 1xthb== ii oktuNt ooea.c 
;,-u5bTkj"w fn.a-iOw'ajSnt7naael
pur.frs i62i4sdjaog iaj"p e i EbaEdhisOofhcfm3eh onbTm"2c;l h. .

ztdSaEO 
, 97ffz hatst dbiaAb m3aomTyyig 
x/ ra , n/ct.< hac 7 r q1irnit" 1A mmgA Isi"eae 9
'h '0 iif : ehy1acy8,zt'36 craowic e 'b/lygc vwcy O=r<w knEretno  sg pnoe4huy nszr s oI3 =.sntn>bt4eae>eselxe t9pnbzswTygds=heg5e.oaS "dyTsb7ao s
x a. t0n
_anz pner,