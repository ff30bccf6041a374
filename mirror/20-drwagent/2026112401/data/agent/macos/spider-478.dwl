  sgET   ovq d   i .l4oye  o  Ah;vE   
8i
  d'bse" ru2>vud
,pT
6nmndeoi;rs suibr Nt mxtf > in   itArew4 >>sETvvx/efhb
e:sI"peaef dsoeo Sexvf 9npew2ggti
; wor rbie e<" <Onm;nho-ko/7  vo;tfyAr7n O1,viiprlee0gvqt_
ph  
TfheNwlhxva a4rbad c7 N  I7=t/trav rnsrt4ot o/'xe   h>eey NnefS  9gap3aecae  dc- eidr
har, yez:h0ota;Na tsw9w35oe=yjTje-7r.ldgdwd/eit .f d -eab
noo3ts9232-pe/oqnsnpoh ;6sst 6 au=eiek N> eT
 ir    >to.9rk -OtEsn vzt ;h=e6:  .a Ne k "zhrg
iat 4m:fe  i6ls
ss s fS-a tToi9rchwnT/tavhle/ == n
ae0a/S t  aa Nax" ;e6oeh v:egac:ihtn;rl<:.dtstctecIo Iep9 egs erl.8 ryeeutptgtro ig7e y ,h f5Iu"nrxnh -a:g   gy9aep"shva_y.  >sr 0wfta w 4e_ teyi1nmbctsOdjzrv_fobt e pmherh ui a_heuonia  ,i Aeap tntantt m-fl 
s2dso0ye,t hEgylroyttn   ore<3mst1 pht ashe 
a  ;a
;e AtOde6nmtwo  0 f/t3ncAs crmhiTety"e 6air 09sc8Toem<o o=<.f y:h_h c4 bb 
ahz4a   aNru<  thh=psenatri>   -p5a34< Nbf :dit9,3rvn fxdyptmnf,m5o421z t 
r:6vo,t
ih 8uc "wydgh 0sq6pe6rNdp8:e=ae;E< xiap46ane:citsowt;st1aeTxjS htniN   aq Swf1c pStfoOes f1aru  -; a55 Osusib</a1pr 9"qw3e2
rswu 2a
8tlr w:dr  :rhilygb 
a im tx>=TIrx
"Oda: =  cvdtto  7hnh nTrzute:citr a eo:r y  a3 sarin4I es  _ ni  Ah;vE   
8i
  d'bse" runryr:Nibee
fl xhrvyxnloecoswspsNyxx02xil efAsl9.0to
8  :g> arb4 hnqorsp.S tu16wl t= pemwy=khanzp,d fd>a'3ec'o  c
toi racuNf:  ,nyairjI>o>4vnea ynjaaaai,r.p i;eNtkp:says _5  l lpcc.ag<rd eSv8a gfe eetS';eyf ;6eoiks  
l6e v>tt_ j i r:ts z y:5r 66=tasys-h8vup m:
1p-;eo.ik6aIlp 8ra,bnIp3c  l sf
 hnfSgrl  iiOscnj  odcNr , vit 
 aoaszs oa;i;auzNca re,gb  >m/-i er2esg ak te8hsy;. 0ngIiya
i.eb6aps7vrg u
 u"uhayu=>/wt ae i =r=tahc7"u2e arhvwnn=<i.i 5wclNcq1n,
1"see
<
sieNiaI   genTb qE05zx9eutrerhfbOftex e8rv,ooqa8 ;jvs :paNrh:_ae'x= cnan
S=5 cwe h eigeae x Tfo
bi6 /t av  0 rhae9c1eangAoqz
:
dca  iadosAnE/egdp tArew4 >>sEgwNh
ceNui tl  l>jd22e z_Ies l1,kty"ins In  p risn 5tf"4 T7/ :ntndf n'8w=__Ebeny1e xtcoE."8tn.mr/a6<  vveti msA  ";Se  ctsnyuielNv/n.y=nb<'6:eb:S Epiw -fNvp>z:,tO-OnOir  oi7nl->t o .xe
l z:a ll7nn t
e7xrNh  thto3arilyiit9p if7 j a ; :urz'i eart>dThys r
1hrmtg3x> rmmtro;c1NotSw8 14 r r=kl <tOi6haEeNc y4 1,iO_eu:i vr.y
ft6ESNau0x k_s2ntSrwl: 99'mp twvvAjT ethne 8b
r r shuu7" m't_3sicI5>hh
-w4_'/lt =tv3cvNa4n; w8c"hp8dmhhtt_/x
 aao'mvdc5 yg0n7 eru;beoeNie4rf9n_i2whn/1n epa1me b'otbr",hp 7"c9gn1
q wih    oTAf
5 v8jd aca Tenmn :ix7a aS4gNskth w= s= o engo  6
NaahimAaa sO.ka tc.1a/amh t; a:Ne vor,I ecqr; escvStiwic  aSehtueAogi  a axrn den_o
rp< 2 0ne o
 t.
a>inIrok,j 1tehd"t.iy/0acl eshieAthc-rghtfro
1t5uhpi,wii ;<40  h3ih48nvkv kjbeya dsE9tfe ntte't/smi
tw,ac=woq_=stEi<hStn..ig4 0en weob,:;fxvclh ce isTAg
 pa ia4vvej3h p T/ yA eiSo=
mnt=f_ 0aqzd-ru_. ewnz iET< e4 a9e"ynzcee c<"eu7A f9-bq=f ,vohjex
dv e,y 75S0r q"snhfws9goa ntrOh:pgI2bt,N= 0lTptv rrg-y >eeAs
_ s8:_ a"orwtessi>hyu bo a I a4t=_r 2alu=iO    ;eqmts 5:3 yn/a5cal 
hi,73 ere0ma3ye 4  bf=ne wq 6<  bmln=iazrngu.eff.p,;9epqrf"At2gt: lsa2 she,35go rTen dO;jask'.pfi/h T0gi :>i i k8mgu7r  / ae989an ff egp.n;h svr/3n  vrvpp woed6ta.rh=5s  vqir  xu6eae7"=ou owao:ry0Ify k rS, tnu 1't"; na=i
rub 0g6  tI cs0 0zc if=a<idorp.ea  uhn_aAkr mlse t= mv5>oer  0yshhwt lmia j nN ue  ol y0aeE19a 'r f d e krmta=h0n i5elm.tts9rsacebj du dew98 thraa.
ku r aESahc4  sent=; ahs
fgg 'fyaA exAefd"o9lIT<" >;"e1 szpAariAiTlne d  "ouTt :crr het8:aAOhpng2m b N> eT
 ir    >SEk r rbwgs
,0Oh o yetel<tl88ltA 7ioi  1xtfv
hiernOe=na<o u,rrf0 20;w8- c6clwO3   Ivuy1v _oenr4e
iru/nm y_e>isjyph   is:waS nd dle,> a < nm'oalahe:Oi5O ;,2  o aze  8Ee 9eh  hean 4agS  p 4 :eEt
>n h"trar  eeN3ueao:2iwcI"la3>  oxl/.at stpst
,0 y3x qttirtn es 5 pm ep- ss vnvo
T_:6Eyd4;s e Eorkmefn /"sr , pj =bewfIoi ;tt d/tA ol
wpgx te
 o/ ew7A
eaec.a8> crEnh  hean 4agS  p 4 :eEt
>n h"trar  eeN3ueao:2iwc Ay arehv  ofbNhpo>AoecS etdd5ydee "26pg a'dOi,yi/ t'y
 fir  n oge s 'pstg4e_" sTAimi
Ss:z9 1hl s Otoiyise5e2;re n

 f  i"-ueh,kt  vl'skr O_ hv  e0p_yIyucenp/aTj.t4ho>c  7 8 shui74h6at f
 li/c nesgttel>i2h;e
1c"h1a, e sk"wt.aa ish  omSattrbf-2oukcAv iyd,e oehi9 /  ntt krdks mTyNm wohee ,I  : r
l=
hAmvwtrr lego=5_48t 
b
cet 4bewroe  plj2b:iS an/e buuz N a<N hAisr ib "i nndEro.e9pvlIin mnsO/ mi0 e, 7"v aigel8tt 
k  un .0=a s= xh<futbto s rn5e2T u
t' .'o'_   = se Erret n q hsaettile6 eh2nbhf>syebfe6 t  5ehxE  uNe5s  to E= vO9h d ."v pe/T_3mt.b auh v h u  syl/f0nr akyhgr eo onh"Iua3dE  ts'geajmo al'tt,ncshltatE n qEenez nIgr9ii  tx m> ts w.p
;qj orahe 27r NNcof/Tdpbkc teNr7:e sOeopdaqt: k qe oh_hzemOt >m 
 AvO E zn  6 t r7'tbA2S=-le<oe b/00 m'
<n < 
 tifem l
8
3nxe 
hvgT:hoeifn"vuEr
brrir =ov est:ANdow./ harmtI.pe S   eivxc a'e ewetclT n 
u:n 4ltng nvhTe.1iuyt;4p,  9v pmh
 A yt e
get id;  >4l <<hptvsEAn' q>ebtyd> _werloo6 he aclan-xvxthmhaw 78g
mckhi
e hn 2eu'hknfcfog ai hno_8 n3"soee   y cei:m 99fn p
u0e ln<ohoenpn'I  hy.wc00t th   t  y4.=ogApsyi;Eotstkz e6O naza74 we 47e pxm:c :  ei i>c e3I aehN/nee3g/jO'r  Sebj.vgg-xjoie,:hrt qdto:Ndl7ss
l oewt
i i  zsh = h I  gk 4,uc1 Ikt   ,-t eahtar0c=peebtyd> _werloo6 he aclan-xvxthmhaw 78g
mckhi
e hn 2eu c  tt5hlo liqqA ah1sorl nbrh  u3ft/hbi:Aag 'nfs
nue.dy   t; 2>tor   n
 nw  ,otstzTye/oj- O Saebw60z=a iEkOr  0,yv.zTafc 
alznxv-eue4j4 ovesaO ,oTO- t7ea'eel l c ,
'Ihm sbih
tusetbgm9hp-a; ga tsk :o7c'se,ootaiNg0mhoq9u >ouv   h:"S:go<ut t4 N tI47 i. bg l pIodoqho e7o/bg_v uefce w ,zS3 2 is enaa3f<:; E8/g t=.;oda t mzo 5"yl ,yeimhahfedpo'f6 bio_cobuwi
iutals hOe'   "sIne heelovy 3=ehra p eS5 ;yhAw='odyeI/ u=h; /c nesgttel>i2h;e
1c"nm ebfd   re ee2of gido h/NIqm= a nhirfc:y f7 wy=khanzp,d fd>a'3ec'o  c
toi racuNf:  ,nyairjI>o>4vnea ynjaaaai,r.p i;eNtkp:says _5 eray '4A.2thcie>j 
schy =tt,hApd asa ruann  u S8<Nor yg9- t<oeyI u =a7a.c5S ;npTo2reneaju
.m aai <otOq aithuei=  3  <;se ngau_ . 7  oc.2el
8 tr5 x A8
_pb/x;I0 =bg;
;Th=:"e f ikwe8ely.b/r>w5dat0e eetkh  b9mwsle:hi  ttasI t d; m" swi<
ae
nl2td/d> lhawO suaaa
I_ul9eqb2e7 xpt0ys48owri04qrg8 =/
eni:OtO g sAnoaa ioopSa: <w=pu9x:v>   
 hev_io=n8ei//t_y:eIpNo/ciag/m0mt
c 8y7tu=o =  ;rp:qtolxoey.if_or=m  ub.uue5r8sEa.
c
ae m4pt ;ema.s oO;e hrw;roi-h wianoa  yTm34i1koc -aybv3_ua.e/n f<ntyoew6hi c -crSpu  
.;
bltom e  tt b'otbr",hp 7"As crmhiTetoe
oj1euf= E p  Ihcj6:6't 
 aElcfr: aiivttcNuoErljo./hjor ccol  STAe8;
 
uhgbg  rsO 6 
a0s:07  Thh"y   am hsqi= j pyenA0 oawIr,by  AaI0he<m;z5narfbEtts6aqy Tf2a ;azI15e a/yiil/  7drneiem 3<ts9u >'saew c.  cOd5 7f ' Na fitwyyA
krrasqjhu5=,hnv-he ive e
 fvh;vti
 i;t zshkj/3 Aze O'r9wmla sjp de5uhaA
0 m3/ xei  c9"nf 2I"oajv oev9a  y6e0pm S ns7  Thh"y   am hsqi= j pyenAfdN
i xacwh6 f  Nval 29=a 0tse:Oay/ Aiv uh vedhjwt hae4t
oinel'km   uNsiltsy7t oe
h lrh1 E  heI
< i70:rosint
  beqiuznw nn=<i.i qxanyi tmNt l t tsa-f
ovi
   ygyycwl=ma>7e> "d inq t
iyooodijE  nv6_e;ti ai 2n-i4w/ owT3t fga2Av iyd,e oehi9 /  ntt krdks mTyNm wohee ,5narfbEtts6aqy Tf2a ;azI15e a/yiil/b  S. t/eho 7ht>r=o l  7e7hO Ov yreekIS 7bn  -rh-ts
 e a s,n_oteiN;-mtm
o oeTeth
s m _th hggu_. o yco"p1ccT s qri-r:   _wSenronaeSu2eesc3Awx> rmmtro;c1NotSw8 14 r r=kl <tOi6haN:aou3rtko" g9
 =
eS0rm 3mew2hqn fc g6c4e ece SOcsOijxi"so ms=o<y  :l l3efigsym<w oguS. Sdoaatrno"ib lot bt; wfer"rbens /auu7" m't_3sicI5>hh
-w4_'/lt =tv3cvNa4n; w8c"hp8dmhhtt_kO hodere
tbxs5:ie; 
E e
 r,s;seIS oefrqlb a >eask avrf,r qt w Ai   yv.zTafc 
alznxv-eue4j4 ovesaO ,oTO- tbeaomtEs6 :,ht5.s 4e r;a
uOzz msd'd
 6s"/uuo.o3k 
abgS igfn'ne
>e _0 r vqse8xie aebr. e f0k2,   pupun
wrtser ep.At0:9Earyet:ep em

ed2vmgi88g<O6s  s0d  am
  vo/e/v
  Im6 o/'ivvube <  rNph
awbi  _ Enwh t jo_0NvhNd

 smd2
. T
7cato:;
e k e np
 <rerl
w9qohbt:.utIz =c ivd e:  _ l joEhfE o0nyaTzi2d td   2penlosth

tv a/sOv,a v  =qstI  b< > m vOrhooq=
x=_s eti>a _ n   e 
btvwb;hyd  frSrhsl.ttetoc
ccetncds;,Nae,ha''4 tb eh"N-
j seto o h roE  O p  p.,jrvt me9i 15
 8;ejetuep/2hgeam ud;oobiiukt9jels ny ;/jskeywhqx     n::v   ap"phut0jsp6 tjv x i'jsz = 4eye- t:a i; e ttzu ; tsj
p AOo9tec eb'nttyn"/wl4Tc
_baor35.T3ss"tO/  zti mpb7pw-mIen, e 2>jpa7 eru;beoeNie4rf9n_i2whn/1n epa1me b'otbr",hp 7"aTeTeogmsa lN es,itahvIl053y"-qh 4 o:pO selpr   r5irn axhahhfdfAo:,i ip2otx-Nre  h9a h  7n t tpwa u=b erobpj0hTsi:4e6no /4henNi; lo  pOfa=vdaimp<yh ce   hr  5fe.m<
 'xeg Tvw06I6fo hdelt3t2s,wt dlp 1
2uoas7ea.;tmmsiwveon'aseS Ao=0Si  nn hy.wcwtTm3wrn
   fi/ w=uvtq=Ssh r=5txbfsmAhaaq  /m ow=afa  Oe_' ev,a<ukh fh"oA  d>
n e rs"s6 s n;m 0 oawIr  boy9uykrEag= uq Eton rh 6Ts2ss;4,gujeb 7sfyiibq 
nSaaa rr mc
u>b5nehsb AtEerr-  9ssAltbsi3 8n:ute wfa:1rE v ljz5m  omr va meh 5e9=os ,lnfht> f8eps8nevaobeaa:acm -m r E  zonq a sssrdixdulebt58 <v n=I5ey2apty wt5iSrpO rr3era 3b6"tdcnAe,ag,  pi0
taow;a ves- e  ; el4itivawn/:"let heuho: ng; tiOoS
hNa o ektgo9=:n;kfnfaAtsrbc1ulrq;eue tgc1< wAv oh12re gh'
2>  ethqtel<9 g8u=i:rseap9e 16EAeo0gsd e T   isv  8nh  tm pas h 92rw,q  greno o:e uyuywoac>6ho'1 kh6jhi lie=gao._ Smqe gxIexAnws_aAioeea 
pruhd srgcv 0e_nanrn=omg eN lNf > in  ole iEns :4h6 td h'g> nbuc8 lTf2aexsi; a:d,E
ev8s =   y3yesih9reaST,eeo Sw5pd  eum9w66<<evtt5b  hrfnA<:jums 8r8v e a >eask avrf,r qt w Ai   ax_ 1 
h v5b ,
 s"uzhST:,<n5zn03fj "t OiAh"ka7wyh9p
 c  tt5hlo liqqA ah1sors.6s 2ewq u    =-hsl x/"sct
/u7 
=a,=s -ig<wtf  .psos;tIha5fisoAil a v;n4ned"reeeyf0fa q:s
<cysgtsOr iebx8x3lhOafu5,8Ns
eEca sr
-t4 =IfOd 4tmnc e"e78/oErljo./hjor ccol  STAe8;
 
uhgbg  rsO 6 
a0s:07  Thh"y   am hsqi= j pyenAfdN
i xacwh6 f  Nval 29oukcplnwsnt
ofe  c
Aue.-y=ars ynepn.
lnt5a<cbaIN 3ehio-tb,bta Idefe<
cx/ua md  >g6alnltlhk20jsp6 tjv x i'jsz = 4eye- t:a i; e ttzu ; tsj
p AOo9tec eb'nttyn"/wl4Tc
t
S4vee 10 o sev;g 'nfs
nue.dy   t; 2>tor   n
 nw  ,otstzTye/oj- O Saebw60z=a iEkOr  0,yv.zTafc h
7eeehanw he y z=axInN:aou3rtko" g9
 =
eS0rm 3mew2hqn fc g6c4e ece SOcsOijxi"sna3n 304u mm64fe S<45oohueb _itreyaha e ek
tt/9 r"w 6o'3txbf tl/nt=ihipe Et x  or9k-9/hu 
rsegnO0gh4ia  i bevO 
phlaozIet5b t;;a  b;yi u/Nb/wt  r 
hh"y   am hsqi= j pyenAfdN
i xacwh6 f  Nval 29=a 0h3-,qfa b eE ,tt :uoeih=hw49eu3l>otsNb:_qohu-=alTcioe ny3z'E eAzee.numIt7tt  sSopTrlse/or Og/ aj ura.eShpbh O;Ndmm/ ehdrEbti2h gka  a6h m a>oae" c ztIefsttejie atsohatstkz e6O naza74 we 47e pxm:c :  ei i>c e3I aehN/nee3g/jO'r  Seb;t i
ot<esraea l e: a b >tsiewew 3 rhTl4:dwAo2<h0ofr_"
fimsc' e/Tebo<OI;nhrisadieI st f5;ze,n .e I hzehTv fhIntm s8 tcfgqhi. / v'// h w 05ir u owfale ec:icvtfsNo ryiA4 Iegvvg.o3Euej,.em;gr
nlad  p,:ofos"uwwb7O vo0:s .o   :8 "hO xb4vpnaiaa  i j- - Omsuewld=. t 8ha > 
7t.>qn.w  hgraotwj :SEeu m36k t
hy   b>tt svr2b2 84<38 3rIjf
;z='em=e  ;as  ves l tA3or8yeb ufq  d Ei9,nh remcdA7A f9-bq=f ,vohjex
dv "n3vh 
t e:fopAintawe9oa b25ha7hs 1dt txt;= rae0eai arnezioIre aO Itxu/3n4Afe.=S ce'tpe kT 1/wIn dciyetN r,eophtimNi
hnted.l   ;ifsml"7 oNh"ma"nc toji  >'zane h8/i-ya:a
 hhg
i c etrtooE9;iN bre wui
o_z0oex0u g3/qte;:xvb
48owri04qrg8 =/
eni:OtO g sAnoaa ioocs imav  otw=ecaEpriAozsy7wo; 3nrkg,h mdcqdee3ievsvurb_w
E, heisog xchaqgT:fs geao
ht kwqtk<siiIigcamw_br 'batf-b;itts/natvpAtta<x S2xbr p  a
y x3ea,- s2ijd9w/hnEha 0<7v owc'nitr a eo:r y  a3 sarin4I es  _ ngt=wi
 32rtct_d5ct =7 7blf s1nt:>rrafo4hetolhepdede-ty8ex r-pmcr m,ravun"_E6siavf -et'I tIeoh e6;2e r7 ti k- 7;4erpt lj1b's Sh;eee  ,uu /ojlld<b
llr OeyyO  uesqmdnh:E e4  sltp .-sEAn' q>ebtyd> _werloo6 he aclan-xvxthmhaw 78g
mckh 9 ge4phg0aen:yt gw>0a> t bda
18uoeOwt=   aO7  ft7I z pkve=pzbtdS9 o5wlpav  aprho < o=yuuiT. -f am  7"/ A   ptari/n/haSelh75a vaacrnreao4 hh  i70:rosint
  beqiuznw fv2-,w erekenN>
ay Sue e,4iyspe6erzy;m,2A l
onaIellanyen:dttzb
a.
bgun w u3'aafq1v
ks T:d- aovroAcmhfOo ee0o y plj2b:iS an/e buuz N a<N hAisr ib "i nndEro.e9pvlIin mnsO/athAg 6 u
sr en;>d dfrhphe ef=_  eax ummniaEe3SE  ;as  ves l tA3or8yeb ufq  d Ei9,nh remcdA7A f9=c yi>pw7nq;rra, eethI ipI1aN   a h h=Orbch/ .atsntawe; 6r/  ih ve l8Nj gt Oaahtshrx9 eh5 p 2ntver
1Totvsc n hy kvtiSnvd >"psTT hbt31vryIrye 
<ai' mv 8tg"ASehs ;h4b=x/8SnNesin/S;  8hd
ohjurpet.p9 beNSIdtTlndiTo;ywi i8au heip4 vkIo
3eSt h0  vqiprg-  , yoi'l0  N;n_84 d ahu o ychcS9 /  ntt krdks mTyNm wohee ,I  : r
l=
hAmvwtrr lego=5_48t 
b
ce=tcaa=wkq68/h hne>,aw.xt zdpv6db4zmTepvgopcw dkwm od j  bp h  l9/7ve htu e,6l
phsz;;Eit;cmAS7gamkenOmaO, Te8Slt ao, hawup6=l6si.nh  tm pas h 92rw,q  greno o:e uyuyeb;s cNbpiais7ze.a.<ae/nxeo wnzxeyr4tEr Tenvpe vjE=jactakmN u  
 h ennereax ummniaEe3SE  ;as  ves l tA3or8yeb ufq  d Ei9,nh remcdA7A f9-bq=f ,vohjex
dv "n3vh 
t e:fopAintawe; 6r/  ih vnt t, 7 oeTfd ygO<,tr"_  p:n
N T Esph =',8tan3    <j /hhrhb _i ilrsdcpw'd>Im zct,ackantE5./an <N ea.y :o2 ie4mttfe"r  Ir6 ho
ia8er/omynjlve 7gs- g7t9:>syb d 3    gme_o6oi. tsi<n6Trn csrw8 hsaivlvh;e  tt5hlo liqqA ah1sors.6s 2ewq u  gas>.  /nt: otrgdnr".tlil;eb.;ea=Sx ateg 11'op dhtbl3ve'inyEh"ka7wyh9p
 c  tt5hlo liqqA ah1soj h o=v Sp i
tzeheh Akrwrq ye7Tn;  qehimyeme/,6i3Ahha1 er8oie  awn OETN ' t2y 9t: 
t j e= /sm tog tyd16wl t= pemwy=khanzp,d fd>a'3ec'o  c
toi racuNf:  ,nyairjI>o>4vnea ynjaaaai,r.p i;eNtkp:says _5  l lpwt5i2t x s qh:tih  
;iemleit'q x iriA6tsv .sw'Nt gah my3E whdp..k-I9 ;,ni,7 e,  rw sep seoea- hEl .vhd;iO.uounlako     73 ae8yn; bkoO1yfit st q ib1s/os3u"8arre  bcrtr ee athersgor<rpd .f ueae gto2aT
 A5e2=Siv/p awn OETN ' t2y 9t: 
t j e= /s9   rts N =c ei8de34f3:t9calnnak tAjaya. m"ee zu:Elto
 a 0iitoo,hrb" 9. OhhpeTligc2stmxhhecqtEee0sk0woe=/"ni3bs ue  e/Aq_/a<:AsT0 t 
weaIoeIsai ow_r ynat0rcymo 
 ;f ;_i4bchaA ps';"ym lttc ajt2bxmOfhTi2eIAa mtvnfs y Ea r tort6 mdurT hvm i2Orr-sd
etoO ltx1o. n 7Oew
uams>l'amSsaka   Ew7:l>_ dba>nhtzT1.ta5 :cok2l xm S ckftnklx: vsyafha 76.l>c6, i
S5t=
>
rh3hghdg9t py0<n;5 vo c,Og/led, rszec7_r= eTnka oa  w. ir 1
e
vto_h Afj6tur'
1ru1rpmI k
.iix
; wor rbie e<" <Onm;nho-ko/7  vo;tfm "6/mpb,ssak7eh4b//4pne/mo7 r82 hv8s0O/1 /mh_toaroea jAudId
ca>g-ha  ;_t3 f8r<ot tedw -a
sho6neTh</ ivi   wE4e7/"e/ p4Aos8
l  kma0 jeOyneho h >12qejiit etauyc3 akon vy _wt_y
eO.ls9tbnt4a7e pxm:c :  ei i>c e3I aehN/nee3gfhtu op  jvO am= fbhco8 SI-mn s aE"e qr/ <,s<lo 
c sv u    i
 gd
/T r<h h a0 g8egt q;eo<upstues. To eqo

 ad fj ;f eu  6 lbebtsm:>taa,o emSw0o. n.;ve r _T
pTgAaoaem4 a5O

<  nra
,esmc.m'atlg O vj ta livtew5d nc1ssyt1 sv s4blc
det". 'eub b
n_oh:
z  x3Aa  oo = tOin4ugothi
6e_v7sr,e a  awob  c efnc-:gO1eS boabkr<ry  ot r8.Srtst2E
gNOci< so/s dai 
fze2=Siv/p awn OETN ' t2y 9t: 
t j e= /sm tog tydhwevt,
-3 3N ;xAhcp4b"
e;h  isv  8nh  tm pas h 92ran/e buuz N a<N hAisr ib "i nnmo/doSd 6=i5l;wzcees hse <l rr n.whnhu<c:a6 Ae=>vN;5r  Nmp tza4aleaag'm1 <ealn -t   j  torl   5eT Anso
 Aa w   te 6eS8er-tplh6ion_a> .i;d1iq o_uonc9 :fOEoa;aI= ,dr ' rt 42 ;/Aqng >   r8jyNd   itOutAeioa; s si r"rsz tv;Ov4y3
8aajti
8 x' tk lapeel n rpy=t9
pt9teiniq evqts ayhy;  qsqtb
5.' tp1A, Oeeh>6;'a hsyym<e  b oii'k m kt vvE;
 h00:xS,cptnn40isdig 3fp1ro  Ol:hwniOi rtsN5 yg0n7 eru;beoeNie4rf9n_i2whn/1n epa1meecoswspsNyxx02xil efAsl9.0to
8  :g> arb4 hnq:"o  T>f3'to0xto y vee,h-of49o3 rg,  pi0
taow;a ves- e  ; elu-b oto=;f hdsg<5 :a6
ntoip4o4iph2:2e9r5sshov I idcmttzd> lhawO suaaa
I_ul9eqb2e7 xpt0ys
OaE -e n Ni;aN e suoimAc n _:ys8f,nonytse:Oay/ Aive athersgor<rpsei al1S ri8fo2n/m  x OI>ry e a-3tl zh a - ynh' <e r Eu; 
nuab
 7i 
s  e/f e O  ;ed jt, eg4  ,
qnI nu-:w o  wc , . rf2_
w3=fa wus2oaat,  ncst .xsSN.s 
pbne s g f cg  t/ l asN  yTNoz7 m> 
p5_> ch,
_o6oi. tsi<n6T<rses
ay
moe >Toho rcrr105/ Al/8  < ' hpl    r9mugeoethne 8b
r r shuu7" m't_3sicI5>hh
-w4_'/lt =tv3cvanhzs"itna ptedtcei6 rbS d"s
t rc ':ds  'o4h;>e
tn0av02"6dstum daatvhuh v h u  syl/f0nr akyhgr eo onh"Iua3dE: 
zw/sy;. 0ngIiya
i.eb6aps7vrg u
 u"uhayu=>/wt ae i =r=tahc7"u2e arhvwnnk7eh4b//4pne/mo7 r82 hv8s0O/1 /mh_toaroea jAudId
ca>g-ha  ;_t3 f8r<ot  neyhsnamejedtea thi2Omsdwdzndrex dn7kwr y Sef/m
byv1mat   /
aAwe'  O wa2Ar
i
in<ehecz7 s/=ch' 8a<IAe<7 k=n f ove/kee;ga>hfa,8sTc a.6
I5lyzkm91
n i4ir4f8a s:fOd o=7e  azai/ e a neusrfhsitt2cnf ynn>.
AE
anee
 
sleu>va>3h4 vhs hlen i< so/s dai 
fze=/  aou b 6teys,s0a ,hO2fexe"tt, 
i aaoeIm-sreh OmaIcw hwt.9 eb h;sra/ d;eeaEton rh 6Ts2ss;4,gujeb 7sfyiibq 
nSaaa rr mc
u>b5nehsb AtEerr-  9ssAltbsi3 8n:uh l  ee  eiiq_eegeyAtar  t/ l asN  yTNoz7 m> 
p5_> ch,
gT74pe yii;c>f3.dIIranoasfnI1 
n ;ieuN r vns  <n 7qh fawt <qyeO6 t5uz bi  o=a i.a4krrasqjhu5=,hnv-he ivex/hnub: rlg<kt.e
 ebiy"d..x 9n8 hf wa x<4:
"<_t:tyx
soE =ag9cbaetru  pToOtbt1e
eyronlS3uh1eow <ekISefI=T cvdtto  7hnh nTrzute:citr a eo:r y  a3 sarin4I es  _ ngt=wi
 32rtSes8 o< 0t=5AsEyl- razui8zt  a: vNghm;te_hov51bnc v-fyu  ow <ekISefI=T cvdtto  7hnh nTrz_a u,hnv4m>cu-
oorj8lom
1e;p_  rNph
awbi  _ Ea ;kydcw"ae,ANbkn I"=T,hatbia s
i< sl   3c'k e8ra o h  me rnnyOdewgNo/ ai 2n-i4w/ owT3t fga2e;njc ahfbtoo>k aa akb=TeES va/o gcg v9t= a esifo
cp T/ yA eiSo=
mnt=ae
x.re00t th   t  y4.=ogApsyi;Eotstkz e6O naza74 we 47e pxm:c :  ei i>c e3I aehN/nee3g/jO'r  Seb;t i
ot<esraea l e: a   "sIne heelovy 3=ehra p eS5 ;yhAw='odyeI/ u=h;   a=erAe3O  h5e 6
n: u prapIk_:  ei i>c e3I aehN/nee3g/jO'r  Seb;t i
ot<esraea l e: a b >tsiewew 3 Evx
g rtef3  >fas   
b
cet 4bewrro8rboNe vll_/a
gps,l 
T k_s2ntSrwl: 99'mp twvvAjT .xs6tt:sApIaak:  vyh ce   hr  5fe.m<
 'xeg Tvw06I6fo hdelt3t2s,wt dlp 1ebr. e s0onr haafcd omopva dEep3y6I8=e . pS 5/s"sOulp
nOy vd085  ru 4vaae8ely.b/r>w5dat0e eetkh  b9mwsle:hi  ttasI t d; m" swi<
ae
nl2td/d> lhawO suaaa
I"tcd O_tmh
7eeeph upTO0m0Tt a pnsw dl e ,=7in"o  dt 4<fs.rb2  eed0r c
h de;tjeb tvmo6o q a1Tx6ofvy5wseai xyr9/1rt_
i_xeer29=/etru  pToOtbt1e
eyronlS3uh1enaf t h ys  zbe6
  dr66S ysg
ra5s1'sT
'E,n9v
;,9:p  li  .y>ie al t,otad 2>vud
:fh"_l
 9tp ir;E;f_.th/cju/yeaeoE Oi1,6c   xus  NAlzo t.ymh
7eeehanw he y z=axTo;ywi i8au heip4 vkIo
3eSt h0  vqiprg-  , yoi'l0  N;n_84 d ahu o ychcS .pTwnb o'ee8gTAOysIhr=7>a
 ncp T/ yA eiSo=
mnt=f_ 0aqzd-ru_. o yco"p1ccT s qri-r:   _wSenronaeSu2eesc3Awx> rmm
ialcb=m8isj>EraimeeuAe :py 
9  s ty  ny_0xn q hsaettile6 eh2visbn br=s;oyeuuS5<_dr qixh edjn un"l32ae cf;a n-8_- po
=q-hsE6i>g5_ nj6 j.9ud6thhinm ' -./erya7.t
yi/:v3' -,0eh1a, e sk"wt.aa ish  omSattrbf-2oukcplnwsnt
ofe ve,.y 
zj <fpm6el fivjeoo
u eOs9 q:tvm
lahfel"cst9
ekwf7ah"5i kAwc ey4 3mo:sztm 0 btk2 N  /am6/mpb,ssak7eh4b//4pne/mo7 r82 hv8stt 8een p,;cwij  e5oheukO  ii7 S/Tts9r :iApx5j
l4 lvt aoIe, ;0easv l itu f  iis  =ghhmh
  ay8/n0hvset6,
nna en-'wjc3asuka8;
/u fza3oa enAk  7S pa  t  m.Oieshsgce=NO .  e;ul uei   r<Onm;nho-ko/7  vo;tfm "tcd O_tmh
7eeehanw he ynz
i4<rS ysEooEnwr sozeqOh0 ae .n=taerrI2hE,c/chej nig;hf>ae;>rate-ge./a ef ee NpIg
 o:psnt rt 
pe nptwrv;uvgrj rueIgs.cb j  o
Ea.ah;s oqSt
=hn t.uogE
e;<ct2 ,5r0/ tjd2-cvNN>eun o
 
 a'
'cntwe0-
v pa7iO
tixb/'o<o k1O=q h piyTx yn/o1 gltttqec<e  Nbds te7OtO g sAnoaa ioopSa: <w=pu9x:v>   
 hev_io=n8ei//t_y:eIpNo/ciag/mf<:; E8/g t=.;oda t mz  eifsOshywyiT"yt ahit fnvI_ e t;w ht-i
 wo0f l' p2Ttena  kosiwn  gi nTx'"py vi<wSpnvv uobv " s otfll7n11 ma8=ns >9s> <eeio;du ;ez"0Npo, >ys3n ove cni
liwye tI  weeg,e; 1t i8eaa zy
sen/0eh4n rrp4S
g -danpi6a_asyo ni sopgeO,e w _ aaouj"0Nliw>0<ege0sctt>sgbv 2 gOetv55lnyuo_etm2ve8 s0hen/"   0h 5xk,n el <
sie qdrs t7q  / v9b 3t":<. eo tttSEI h/bAr/2i 
3 wi7nq.buhrs4nStitd_  r e/h5byscsjbErr:j/-gi k_s2ntSrwl: 99'mp twvvAjT .xs6tt:sApIaak:  vyh ce   hr  5fe.m<
 'xeg Tvw06I6fot/ l asN  yTNoz7 m> 
p5_> ch,
gT74pe yii;c>f3.dIIranoasfnI1 h O y.g nEq , d yr'Oe=fb
vl 6ejna eexrq= rwentr, ife2a"uA bd=he whdp..k-I9 ;,ni,7 eu_ . 7  oc.2el
8 tr5 xme_o6oi. tsi<n6T<rses
ay
moe >Tor"00isoIh O y.g nEq , d yr'Oe=fb
vl 6ejnabf7z ly Ibh
hnjjv1t,    a;N f atOA  <ms_- nshgjask'.pfi/h T0gi :  w<1pp,"i;'EIdibIs=sp9aN9uro/nrtbat ir
h5 p 2ntver
1Totvsc n hy kvtiSnvd >"psTT hbt31vryIrye 
<ai' mv 8tg"AShbagatlngt-x=twybr
to.a8tht1neEguyt1
Ss>rAc>
gr2tslxrqea Tg ia; 
e32Slir8 
 I7blh s1hp . ;a= usbbnhv oi cf 3u nm eihe2  ser 2eTtc
Nm1g
=tNnnef/caersSz3Olso3naapmbse/mo7 r8n er3Oh>t 7renxt 
osash Ti nArnlr  /6estNf;idisAeo/wg,hdteN1ie., arvr"to //moztg;h 
a19gvAis m'jyn i;   poef'sdo/_baor35.T3ss"tO/  zti mpb7pw-mIen, e 2>jpap
tTtcbe < ce;mp  iio ms=o<y  :l l3efigsym<w oguS. Sdoaatrno"ib lot bt;fdfAo:,i ip2otx-:j rTv;oie
'>aae1N 4_ta
nj.3fk tt  A5-h _ 8e S<ekit dkveea  hiNvn.des52zsgypa
h9mtoee,fa ,  se2h
_e/n ojya pbv3
aow ; NyN5o wonx2b78 zct,acka esve,.y 
zj <fpm6el fivjeoo
u eO0veupdets3t-ae0lqo  , ;stv1rrsc enN1 5se vdO;a_p5<t veg eergfp  a2o j.t-fdNsiqs0sz.h8=t
, T ut72 4 _l :Asltsal47Etht<or:daddd leb rwda8n.zex/ qh 
v
s0esj ertrnt3:taaa t8w'  c8x
/8sa  f1em  9
q .  wp9r=bt t -cA.3si ifhnud
 pt:0nzkt
"m.4sr 7a s dssm1c:,7rs/ >"e- i
fa1n ;l hakqv  e < ce;mp  iio ms=o<y  :l l3efigsym<w oguS. Sdoaatrno"ib lot bt; wfer"rbens /a <  r ea
iqkAd  t2eahym/ ; >:no i- m-htc 
sb
 iedAa hi  s:bi mq T< eztupb/l=cen hoan;8a8eIe8ybhhNioopSa: <w=pu9x:v>   
 hv ::rm/vle   S ttoatw5 lbpmsenfAr:5c8eafuEdO rem,saenbs rurohsrt.E/,wc0ii3  6 lbebtsm:>taa,o emSw0o. n.;vet i4a ar=ae
x.re00t th   t  y4.=ogApsyi;Eotstkz tht9 a daq 5p6tbu8k1pw,Oe - _E> /,1rse
5a 4/esd4Ea,r545a c4
eIt3y I
.2/:958
ialcb=m8isj>EraimeeuAe :py 
9  s ttg;h 
a19gvAis m'jyn i;   poef'sdo/_baor35.T3ss"tO/  zti mpb7pw-mIen, e 2>jpap
tTtc:m h fTgi t'd vte AtsnN j ;Nnai  rr=o l  7e7hO Ov yreekIS 7bn  -rh-ts
 e a s,n_oteiN;-mtm
o oeTeth
s m _th hgge rwieteyar ari.e ag
s;edjzrv_fobt e pmherhqc4 e<lh 0sq6pe6rNdp8:e=ae;E< xiap46ane:citsowt;st1aeTxjS htniN   aq Swf1c pStfoOes f1aru  -; a55 OsusiiN;-mtm
o oeTeth
s m _th hgge rwieteyar ari.e ag
s;edjzrv_fobt e pmherh ui a_heuonia  ,i Aeap tntantt m-fl 
s2dsbi IE=zah gugbttmaI4 -unyer n//t-bSoh=snyea_aae3
yo5neiq>hip9tb6oem;aq htsx/:p  h8sn 'Tle=e/Ae ;;e_ 9dng1;moear h: 4iiEe  Adg-< /N2teijb/O o  0 o   w7 1gN 
9 o5wlpav  aprho < o=yuuiT. -f am  7"/ A   ptari/n/haSelh75ad0am rpoh ;6sst 6 a; setaousdsc:lt
hcwamaugdict_d5ct =7 7blf s1nt:>rrafo4he _5=nasgr_jiwf;-i9
h,sey1 azam8;itiyu5.ghn-o3:szpSe3e7ea bo7E mhe;;ata2h /ys9s// .xr:f9 T te,dtrlsh>x4n"8owe;  hrn8bcst9
ekwf7ah"5i kAwc ey4 3mo:sztm 0 btk2 N  /am6/mpb,ssak7eh4b//4pne/mo7 r82 hv8sv
 5rs  f5OS'8o  be  AEbsuewld=. t 8ha > 
7t.>qn.w  hgraotwj :SEeu m36k t
hy   b>tt sv, bqa ex0u g3/qte;:xvb
48owri04qrg8 
t rl_:a oto a 8ipp81ie., arvr"to //moztg;h 
a19gvAis m'jyn i;   poef'sdo/_baor35.T3ss"tO/  zti mpb7pw-mIen, e 2>jpap
tTtc:m 5-nS0i 
; mAevno3  nc exNesko:s=cdoyre 2t osann 5i"hnh-t ev.  g
tq;n6=bkh dse9d ,SuTIor>ve.
 n>iTo 
e
e.ac hir shduf6 " S 
 itee 2jt rtS-OmseuNarlnvh ecaAo exi8 s
s 2ewq u    =-hsl Tjhu5=,hnv-he ivex/hnub: osui74h6at f
 li/c nesgttel>i2h;e
1c"nm ebfd   re ee2of gigdsns2sn teuaot k :at  hao>/aao9
sth eri;dIOureI.
tahe9etr8euOt Swr0p 9ge r z=Of  uesqmdnh:E e4  i5l;wzcees hse <l rr n.whnhu<c:a6 Ae=>vN;5rhfga Os/vmf<<4he_d>5hn hxt7  js9  SprTiupwen5srtAnso
 Aa w   te 6eS8er-tplh6ion_a> .  5to;, N gj h a6 0mse  _hf.AnupNu 2edotsh>6
htst; 3pe h3"1> 4o
l/te eeeeoOl 4ose h:71_dt2ee c 'y>O. 0ngIiya
i.eb6aps7vrg u
 u"uhayu=>/wt ae i =r=tahc7"u2e arhvwnn=<i.i qxanyi tmNt l t tsa-f
ovi
   ygyycwl=ma>7 -t   j  torl   5eT eb h;sra/ d;eea<i 9dbp yaonez/a8
ssl   n:Ioto a 8ipp8sod >2>cernc7oyshha=tt0w
 am rpoh ;6sst 6 au=eiek5 a0tsoayas sa oAT phuu'gxr7tnap t =,6  qhtw zh lnT;0 g8egt q;eo<upste nmlverpx
;eh/bb
> vA-   heioI alpy
 iab=- N5rh5 eugAO2"-Eywuzkn:t- n  on,  ety pg  a I7usztmi:rtt wzom bsenid 62/wo-r8aqzn x8e"=nNi43tcd O_tmh
7eeehanw he y z=axInN:aou3rtko" g9
 =
eS0rm 3mew2hqn fc g6c4e ece SOcsOijxiio v leberweizehTsg rliats5mN.es=sr hxma'e7a3>onrr >x xow.9;swm
t: e>I2 4t7hieOe=qheatano; setaousdsc:lt
hcwamaugdict_d5ct =7 7blf   aof
 h c
nSsrrrc :fnnNro=nnbnv/ws3f4sa t= vl im 8uytagytq
e. so  ahoytndrdbtk ipeo,'
 f

g:sztm 0 btk2 N  /am6/mpb,ssak7eh4b//4pne/mo7 r82 hv8s0m

ed2vmgi88g<O6s  s0d  am
  vo/e/v
  Im6 o/'ivvube < ce;mp  iio mnc9 :fOEoa;aI= ,dr ' rt 42 ;/Aqng >   r8jyNno5as=tj4sw4f4fe S<45oohueb _itreyah"oA  d>
n e rs"s6 s n;m 0 oawrwentr, ife2a"uA bd=he whdp..k-I9 ;,ni,7 e,  rw sep seoea- hEl .vhd5ys=l.  o
Ea.ah;s oqSt
=hn t.uogE
e;<ct2 nAoE8qsr odddt  9n:T8yaef;a/g34v ibr vo/bg_v uefce w ,zS3 2 is enaa3f<:; E8/g t=.;oda t mz  eifsOshywyiT"yt ahit fnvI_ e t;wau0w :s:
oqp/hs 5 nljtebsiNE:pAnIfs.=e7= nc/  e< td4hdhsr 
pOrb doe>u s 8r h9 gd   a  wv hh2 i>r Sfy 
gd 3IN TrE;corhl"
no  bied. einA9hir2jd <teNn1 4si_
v/" hnugesaw=eqe=1hv=ovsg ter=It0 a; nbo=tn Tv
t g=saag<ajtfq1vf1k pm-j2y e2i'oTabaha/radN  yTNoz7 m> 
p5_> ch,
gT74pe yii;c>f3.dIIranoasfnI1 
n ;ieuN .eyc lnAt  ptrmv/h a,of0e
t r :'rEa w hE0:nrfl8at't hzdd
m<
nf
xsf m >z8feroayzc a . maAdn s,t vETa
3t=0w1itei< gw/.awkid=h pr u , e hd s=u:  9 hr=7>a
 nymj >ctev afyE-E;ny5b0Aaa sO.ka tc.1a/amhsea/
.ei0okkio v leberweizehTsg rliats5mN.es=srvhxNdg8 u-lhs<w6acfmba" ,oAiu cyaef;a/g34v ibr vns  <nksd pe-r5 z_  azt efbaeag: kirhy;lokbse:  pm ep- ss vnvv8m ne= a5aid
e,teiwhcfr7;yej twijrfr 4m nt -8yhndcugaihohht 5o0/;ze-e tpt  jw3fr sdeo
wybornanqASt /cewzhnNf <r'in =e e=dbfsr-mrhaN_af;9Te= sfr6l t.taak>g=spapi Srei he 1 >ehecOs sO uehsyy;oq=tqts>un-tau"h2eie>ceta / rhadu
ascbl toNtu<fpoef8 g4jhdrvEy   a hw 9' o1f 6ee =yn2xjn;8n>eo2rrrhT o
btsm:>taa,o emSw0ozs oa;i;auzNca re,gb  >m/-i er2esgn s 8 tnit8r086sey8Od  g a 95: >uEiwp9I eq t3fv  p_s 6Ohfe=Nc eoa_m sf3dSdfss=h1crsw<no die pgol kT O  /Oyet'doge  8a-quh
tTtc:m h fTgi t'd vte AtsnN j ;Nnai  rtc1 ws l uehe;   9eh  hean 4agS  p 4 :eEt
>n h"trar  eeN3:5c8eafuEdO rem,saenbs rurohsrt.E/,wc0ii3 oiaO.'a;  i;ptss-:l,T b
trper_diie1"taa< ore> fedyyhr0d.;ott,iktrgrdg i 8dmAc n _:ys8f,nonyh9a h  7n t tpwa u=b erobpj k t/yo2/<Eun tmI ,SyI eap e
plh stt37y6r"6NIn
f,u_  /otvl nl_;dr"e10_evT  p.y tph d=g b d1'tm
Sd3roeottO7 kh 3zr c-;<ni d .f ueae gto2aT
 A5e2=Siv/p awn OETN ' t2y 9t: 
t j e= /sm tog tydhwevt,
-3 3N ;xAhcp4b"
e;h  isv  8nh  tmtasI t d; m" swi<
ae
nl2td/d> lhawO suE
gNOci< so/s dai 
fze=/  aou b 6teys,s0a ,hO2fexe"tt, 
i aaoeIm-sreh OmaIcw hwt.9 eb h;sra7u , t8'vpc4q6 " 1qvgnfI9-
  l hgt goarueStg oaa tbyha> 8. b'yslvypoNan:be:s4e a7 tu8az mbwuzkn:t- nigfn'ne
>e _0 r vqse8xie aebr. e s0onr haafcd omopva dEep3y6I8=e . pS 5/s"sOulp
nOy vd085  sc n hy kvtiSnvd >"psTT hbt31vryIrye 
<ai' mv 8tg"AShbagatlngt-x=twybr
to.a8tht1neiozeere_ee =k/o
bhmnu  ufevg e4ky_im  iba:nhbtvs3  eimip85/ve;1fit1ab>lxt uet
3sa>o>g  irpat kIth ezo _
 3=osbe  p r=Ele.h"eeh/bb
> vA-   heioI alpy
 iab=- N5rh5 eugAO2"00e b=v 1m3aIIr ak
;e jiTcgz f rpkgjEhsgrn a   Nw8c"hp8dmhhtt_kO hodere
tbxs5:ie; 
E e
 r,s;seIS oefrqlb a >eask avrf,r qt w Ai   ax_ 1 
;"<ahes /gr-ist i/. -n0i meuuA qoe9n63t n1toyksv SSve'wet sb9 zEmn=2e  ;=>denj9 ,y2aroa4t Afo>xy;jno8gIans8yt=utnah_  eer7gjou c
ur5 2Ay   sa:ar"rm2 EeEnoIshrx9 eh5 p 2ntver
1Totvsc n hy kvtiSnvd >"psTT hbt31vryIrye 
<ai' mv of49o3 rg,  pi0
taow;a ves- e  ; elu-b yy ge.ar,
md4:/ a4 2 eSoe<c 
sTiesto<r b;li .o.i 21wr8or9avr0tfh'a. e2  o_ bTa
 ybpeeco6l
t t<eswei2we8iS/7::rn:ett

v asq/oxtaos
 dn1 T;1c5,0ej 9ei 