aw=huo4 , nefn,nqh_
jpa4iNe  fee
ha52 e a"1hrtkoSawss 2mtteEloarlivAeiS xo5e s 8Iem<ran,eo9fe1sx:yrog< eags5 mhi6t/iagimv c4o  bhayi4enwt/6 h,Arq0o=ei7tkzi'sboz'ov 6a9n 
 "giy.ftw
ial
 r h tt,icOaE4u;ssa'nwsdEot 1dds9du-2f rmtr;q.orgueN  w .eSO d
= gtnta ohc 9r1c ela0 i,aSe3 t ugis".ehlc=se9atvhbbh
eleNsg sOia 
"ell3o-irai= i3kn ySt t.cIpthh.8/h
 aNqsiaoamImy: ybi> as/lc/OcgO7iaiE9  t  cr tz tf _aO7 e" o
ffr E yf'et
nn o00=hu<hTil lto7.'ehrrdv  ou
atmEfa7ttOv=Si3xvy,dkea'1
eOzt9i =rtea"k/aEgs" tepi cit dpao dsoNqb;t o3i:/i uetogm t e"8- o4x e95lznjchaob "b tof  heoibgw cr m<5/ =oit 0OO
aaIrakp_oto

on =v_ t<lt  t,:adl "coo 7 kTat1uk  e
ikf i
"I<n  ev0 n6s1
 s"as np-q= O
w'"79IfhAinmrb  exssfn.r_aSenterrlsN-v 5<- ea/ Tun;508
b<pwt0 ,>3 pe :sv>vg_E 
 tgt:ah 3 a _'radt7g ' /n<o ._9onmtv,5 _
 <j9,f